"""The domains of the embedded generator: tables, columns and the English words for them.

One domain per block. A table line reads `table(plural)[*]: column:kind [args] ["label|synonym|..."], ...`, or
`table(singular/plural)` where the words differ from the table's name (`customer_order(order/orders)`); `*` marks
tables of people (so that a question says "customers from Lyon", not "customers in Lyon"). Every table also gets
a primary key, named in the database's style (`id`, `book_id`, `BookID`...). A leading `?` marks a column that
some databases of the domain leave out. `x_id:fk other "phrase"` is a foreign key, and its phrase links the two
in a question ("books written by authors from Peru"). A line `~ a "phrase" c; c "phrase" a` after a table with
foreign keys to both a and c says how a question links them through it ("members who borrowed books ..."):
a many-to-many (bridge) table. Kinds: person, title, company, city, country, pick {a|b} (a category),
unique {a|b} (a name, distinct per row), int, qty (an additive count), money, real, year, date (with ranges).
Labels are what questions call a column; the first is its usual name, the others synonyms.
"""

DOMAINS = {
    "library": """
author(authors)*: name:person "name|full name", nationality:country "nationality|country", birth_year:year 1920 1995 "birth year|year of birth"
book(books): title:title "title|name", genre:pick {Fantasy|Mystery|Romance|Science Fiction|History|Poetry|Biography}, pages:qty 80 900 "number of pages|page count", price:money 5 60 "price|cost", ?year_published:year 1950 2024 "year published|publication year", author_id:fk author "written by"
member(members)*: name:person, city:city, ?joined_year:year 2010 2024 "year joined"
loan(loans): book_id:fk book "of", member_id:fk member "made by", loan_date:date 2021 2024 "loan date", days:int 1 60 "number of days|loan length in days"
~ member "who borrowed|who have borrowed" book; book "borrowed by" member
""",
    "retail": """
customer(customers)*: name:person, city:city, ?email_opt_in:pick {yes|no} "newsletter opt-in", loyalty_points:int 0 5000 "loyalty points|points"
store(stores): name:unique {Central|Riverside|Northgate|Harbor View|Old Town|Westfield|Hillcrest|Lakeside|Market Square|Parkway}, city:city, opened_year:year 1990 2023 "opening year|year opened", ?floor_area:qty 200 5000 "floor area"
product(products): name:unique {Desk Lamp|Office Chair|Water Bottle|Backpack|Notebook|Headphones|Coffee Mug|Umbrella|Keyboard|Sunglasses|Wall Clock|Yoga Mat|Blender|Toaster|Phone Case|Scarf|Rain Jacket|Candle}, category:pick {Home|Office|Electronics|Outdoor|Kitchen|Clothing}, price:money 3 250 "price|unit price", stock:qty 0 400 "stock|quantity in stock"
purchase(purchases): customer_id:fk customer "made by", product_id:fk product "of", store_id:fk store "at", quantity:qty 1 10, purchase_date:date 2022 2024 "purchase date|date of purchase"
~ customer "who bought" product; product "bought by" customer; customer "who shopped at" store; store "visited by" customer; store "that sold" product; product "sold at" store
""",
    "university": """
department(departments): name:unique {Mathematics|Physics|Chemistry|Biology|History|Economics|Computer Science|Philosophy|Linguistics|Geography}, building:pick {North Hall|South Hall|Science Center|Main Building|Library Annex}, budget:money 100000 2000000
professor(professors)*: name:person, department_id:fk department "in", rank:pick {Assistant|Associate|Full} "rank|academic rank", salary:money 50000 180000 "salary|pay", hire_year:year 1985 2023 "hire year|year hired"
student(students)*: name:person, age:int 17 35, city:city "city|home city", ?gpa:real 2 4 "GPA|grade point average"
course(courses): title:unique {Linear Algebra|Quantum Mechanics|Organic Chemistry|Genetics|Modern Europe|Microeconomics|Databases|Ethics|Syntax|Climate Systems|Statistics|Algorithms|Cell Biology|Game Theory} "title|name", credits:int 1 6 "credits|number of credits", department_id:fk department "offered by", professor_id:fk professor "taught by"
enrollment(enrollments): student_id:fk student "of", course_id:fk course "in", grade:pick {A|B|C|D|F}, semester:pick {Fall 2022|Spring 2023|Fall 2023|Spring 2024}
~ student "enrolled in|who took" course; course "taken by" student
""",
    "hospital": """
doctor(doctors)*: name:person, specialty:pick {Cardiology|Neurology|Pediatrics|Oncology|Dermatology|Orthopedics} "specialty|field", years_experience:int 1 40 "years of experience|experience in years"
patient(patients)*: name:person, age:int 1 95, city:city, ?blood_type:pick {A+|A-|B+|O+|O-|AB+} "blood type"
appointment(appointments): patient_id:fk patient "for", doctor_id:fk doctor "with", appointment_date:date 2022 2024 "appointment date|date", fee:money 40 400 "fee|charge", status:pick {completed|cancelled|scheduled}
~ patient "who saw|treated by" doctor; doctor "who treated|who saw" patient
""",
    "airline": """
airline(airlines): name:unique {Sky Blue|Northwind Air|Coastal Airways|Polar Jet|Sunline|Atlas Air|Eagle Express|Horizon Wings}, country:country, founded_year:year 1950 2015 "founding year|year founded", fleet_size:qty 5 300 "fleet size|number of aircraft"
airport(airports): name:unique {Greenfield International|Bay Regional|Mountain View Airport|Capital Airport|Harbor Field|Lakeside Airport|Redstone Airport|Summit Airport|Valley Airport|Pine Ridge Airport}, city:city, runways:int 1 6 "number of runways|runway count"
flight(flights): flight_number:unique {AB101|AB202|CX330|CX418|DL500|DL612|EK707|EK815|FR920|FR101|GA230|GA345|HX456|HX567|IB678|IB789|JL890|JL901|KL112|KL223} "flight number", airline_id:fk airline "operated by", origin_airport_id:fk airport "departing from", distance:qty 150 9000, price:money 49 1500 "price|fare|ticket price", duration_minutes:int 40 800 "duration in minutes|flight time in minutes"
~ airline "flying from|with flights from" airport; airport "served by" airline
""",
    "music": """
artist(artists)*: name:person, country:country, debut_year:year 1960 2020 "debut year|year of debut", ?genre:pick {Rock|Pop|Jazz|Hip Hop|Classical|Electronic|Folk}
album(albums): title:title "title|name", artist_id:fk artist "by|recorded by", release_year:year 1965 2024 "release year|year of release", sales:qty 1000 5000000 "sales|copies sold", ?label:pick {Blue Note|Sunrise Records|Echo|Northern Sound|Indigo} "record label|label"
song(songs): title:title "title|name", album_id:fk album "from|on", duration_seconds:int 90 600 "duration in seconds|length in seconds", streams:qty 1000 90000000 "streams|number of streams"
""",
    "cinema": """
director(directors)*: name:person, nationality:country "nationality|country", birth_year:year 1940 1990 "birth year|year of birth"
movie(movies): title:title "title|name", genre:pick {Drama|Comedy|Thriller|Horror|Animation|Documentary|Action}, release_year:year 1970 2024 "release year|year of release", budget:money 100000 200000000, rating:real 1 10 "rating|score", director_id:fk director "directed by"
review(reviews): movie_id:fk movie "of", critic_name:person "critic name|critic", score:int 1 10 "score|review score", review_date:date 2015 2024 "review date|date"
""",
    "football": """
team(teams): name:unique {Red Lions|Blue Sharks|Green Foxes|Golden Eagles|Iron Wolves|Silver Hawks|Black Bears|White Tigers|Storm United|River City FC}, city:city, founded_year:year 1880 2010 "founding year|year founded", ?stadium_capacity:qty 5000 90000 "stadium capacity"
player(players)*: name:person, team_id:fk team "playing for", position:pick {Goalkeeper|Defender|Midfielder|Forward}, age:int 17 39, goals:qty 0 40 "goals|goals scored", nationality:country "nationality|country"
game(games): home_team_id:fk team "hosted by", game_date:date 2022 2024 "game date|date", attendance:qty 1000 80000 "attendance|number of spectators", home_goals:int 0 6 "home goals", away_goals:int 0 6 "away goals"
""",
    "restaurant": """
restaurant(restaurants): name:unique {The Olive Tree|Blue Lantern|Spice Route|Harbor Grill|Golden Noodle|Little Paris|Casa Verde|Smoke House|Green Bowl|Sakura Garden}, city:city, cuisine:pick {Italian|Thai|Mexican|French|Japanese|Indian|American} "cuisine|type of cuisine", rating:real 2 5 "rating|star rating", opened_year:year 1995 2023 "opening year|year opened"
chef(chefs)*: name:person, restaurant_id:fk restaurant "working at", years_experience:int 1 35 "years of experience", salary:money 30000 120000 "salary|pay"
dish(dishes): name:unique {Margherita Pizza|Pad Thai|Tacos al Pastor|Coq au Vin|Ramen|Butter Chicken|Cheeseburger|Caesar Salad|Risotto|Sushi Platter|Falafel Wrap|Lasagna|Green Curry|Onion Soup|Paella}, restaurant_id:fk restaurant "served at", price:money 6 45 "price|cost", calories:int 200 1400 "calories|calorie count", ?is_vegetarian:pick {yes|no} "vegetarian"
""",
    "hotel": """
hotel(hotels): name:unique {Grand Plaza|Seaside Inn|Mountain Lodge|City Suites|Royal Garden|Sunset Resort|Maple House|Riverside Hotel|Palm Court|Alpine Rest}, city:city, stars:int 1 5 "stars|star rating", rooms:qty 10 600 "number of rooms|room count"
guest(guests)*: name:person, country:country "country|home country", age:int 18 85
booking(bookings): hotel_id:fk hotel "at", guest_id:fk guest "made by", check_in:date 2022 2024 "check-in date", nights:int 1 21 "number of nights|length of stay in nights", total_price:money 60 6000 "total price|total cost"
~ guest "who stayed at" hotel; hotel "booked by" guest
""",
    "company": """
department(departments): name:unique {Sales|Marketing|Engineering|Finance|Legal|Support|Research|Operations|Design}, floor:int 1 20 "floor|floor number", budget:money 50000 5000000
employee(employees)*: name:person, department_id:fk department "working in", title:pick {Analyst|Engineer|Manager|Designer|Specialist|Director|Intern} "job title|position", salary:money 25000 220000 "salary|pay|wage", hire_date:date 2005 2024 "hire date|date of hiring", city:city
project(projects): name:unique {Apollo|Beacon|Cascade|Delta|Ember|Falcon|Granite|Harbor|Iris|Jupiter|Keystone|Lumen}, budget:money 10000 3000000, start_year:year 2015 2024 "start year|year started", status:pick {active|finished|paused}
assignment(assignments): employee_id:fk employee "of", project_id:fk project "on", hours:qty 5 800 "hours worked|hours"
~ employee "working on|assigned to" project; project "staffed by" employee
""",
    "real_estate": """
agent(agents)*: name:person, agency:pick {Keller & Co|Bright Homes|Urban Nest|Coastline Realty|Prime Estates} "agency", years_active:int 1 30 "years active|years of activity"
property(properties): address:unique {12 Oak Street|4 Elm Avenue|88 Pine Road|7 Birch Lane|150 Cedar Drive|23 Maple Court|9 Willow Way|61 Ash Grove|30 Spruce Place|17 Poplar Row|5 Chestnut Hill|42 Linden Park|71 Hazel Close|2 Rowan Square|19 Alder Street} "address", city:city, type:pick {apartment|house|studio|townhouse|villa} "property type|type", bedrooms:int 0 6 "number of bedrooms|bedrooms", area:qty 25 450 "floor area|area", agent_id:fk agent "listed by"
sale(sales): property_id:fk property "of", sale_date:date 2018 2024 "sale date|date of sale", price:money 80000 2500000 "price|sale price"
""",
    "cars": """
manufacturer(manufacturers): name:unique {Aurora Motors|Baltic Auto|Condor|Drako|Eon Cars|Falke|Garnet|Helix Motors}, country:country, founded_year:year 1900 2010 "founding year|year founded"
car_model(car model/car models): name:unique {Sprint|Voyager|Nova|Ranger|Atlas|Breeze|Comet|Summit|Tundra|Zephyr|Orbit|Pulse|Vector|Quartz} "name|model name", manufacturer_id:fk manufacturer "made by", body_type:pick {sedan|SUV|hatchback|coupe|van|pickup} "body type", horsepower:int 70 600 "horsepower|power", price:money 12000 140000 "price|list price", ?fuel:pick {petrol|diesel|electric|hybrid} "fuel type"
dealer(dealers): name:company "name|dealer name", city:city
sale(sales): car_model_id:fk car_model "of", dealer_id:fk dealer "made by", sale_year:year 2018 2024 "sale year|year of sale", units:qty 1 40 "units sold|number of units"
~ dealer "that sold" car_model; car_model "sold by" dealer
""",
    "museum": """
museum(museums): name:unique {City Art Museum|National Gallery|Modern Arts Center|Harbor Museum|History House|Design Museum|Photography Hall|Sculpture Park}, city:city, founded_year:year 1850 2015 "founding year|year founded", annual_visitors:qty 5000 3000000 "annual visitors|visitors per year"
painter(painters)*: name:person, nationality:country "nationality|country", birth_year:year 1500 1990 "birth year|year of birth"
artwork(artworks): title:title "title|name", painter_id:fk painter "painted by", museum_id:fk museum "held by", year_created:year 1520 2023 "year created|creation year", value:money 1000 90000000 "estimated value|value", medium:pick {oil|watercolor|acrylic|ink|tempera}
~ painter "exhibited at|with works held by" museum; museum "holding works by" painter
""",
    "farming": """
farm(farms): name:unique {Green Acres|Sunny Fields|Willow Farm|Oak Hollow|Meadow Brook|Red Barn|Clover Hill|Stone Creek|Golden Valley|Pine Farm}, region:pick {North|South|East|West|Central}, area_hectares:qty 10 3000 "area in hectares|size in hectares", founded_year:year 1850 2020 "founding year|year founded"
crop(crops): name:unique {Wheat|Corn|Barley|Soybean|Potato|Rice|Oats|Sunflower|Canola|Sugar Beet}, category:pick {grain|vegetable|oilseed} "category|crop type", price_per_ton:money 100 900 "price per ton"
harvest(harvests): farm_id:fk farm "from", crop_id:fk crop "of", harvest_year:year 2015 2024 "harvest year|year", tons:qty 5 5000 "tonnage|tons harvested"
~ farm "that grew|that harvested" crop; crop "grown at|harvested at" farm
""",
    "conference": """
conference(conferences): name:unique {DataConf|AI Summit|WebDev Days|CloudCon|SecureWorld|QuantumMeet|RoboForum|BioCompute}, city:city "host city|city", year:year 2010 2024, attendees:qty 100 20000 "number of attendees|attendance"
researcher(researchers)*: name:person, affiliation:pick {MIT|ETH Zurich|University of Tokyo|Oxford|Stanford|TU Munich|Sorbonne|McGill} "affiliation|university", h_index:int 1 90 "h-index"
paper(papers): title:title "title|name", conference_id:fk conference "presented at", researcher_id:fk researcher "written by", citations:qty 0 5000 "citations|citation count", pages:int 4 30 "pages|number of pages"
~ researcher "who presented at|with papers at" conference; conference "with papers by" researcher
""",
    "gym": """
trainer(trainers)*: name:person, specialty:pick {yoga|boxing|cycling|pilates|weightlifting|running} "specialty|discipline", hourly_rate:money 20 120 "hourly rate|rate per hour"
member(members)*: name:person, age:int 16 80, city:city, membership_type:pick {basic|premium|student|family} "membership type|plan", join_date:date 2015 2024 "join date|date joined"
session(sessions): trainer_id:fk trainer "led by", member_id:fk member "attended by", session_date:date 2023 2024 "session date|date", duration_minutes:int 30 120 "duration in minutes|length in minutes"
~ trainer "who trained" member; member "trained by" trainer
""",
    "logistics": """
warehouse(warehouses): name:unique {Depot A|Depot B|North Hub|South Hub|East Yard|West Yard|Central Store|Port Terminal}, city:city, capacity:qty 1000 90000 "capacity|storage capacity"
driver(drivers)*: name:person, license_class:pick {B|C|CE|D} "license class", years_experience:int 1 40 "years of experience", city:city
shipment(shipments): warehouse_id:fk warehouse "sent from", driver_id:fk driver "delivered by", weight_kg:qty 1 20000 "weight in kilograms|weight", ship_date:date 2023 2024 "shipping date|date shipped", status:pick {delivered|in transit|delayed|returned}
~ driver "who delivered from" warehouse; warehouse "served by" driver
""",
    "bank": """
branch(branches): name:unique {Downtown|Airport|University|Harborfront|Old Market|Riverside|Uptown|Station Square}, city:city, opened_year:year 1960 2022 "opening year|year opened"
client(clients)*: name:person, city:city, age:int 18 90, credit_score:int 300 850 "credit score"
account(accounts): client_id:fk client "owned by", branch_id:fk branch "held at", account_type:pick {checking|savings|business} "account type|type", balance:money 0 250000 "balance|account balance", opened_date:date 2000 2024 "opening date|date opened"
~ client "with accounts at|banking at" branch; branch "serving" client
""",
    "school": """
teacher(teachers)*: name:person, subject:pick {Math|English|Science|Art|Music|History|Geography|Sports}, age:int 24 65, salary:money 28000 90000 "salary|pay"
pupil(pupils)*: name:person, grade_level:int 1 12 "grade level|grade", city:city, teacher_id:fk teacher "taught by"
exam(exams): pupil_id:fk pupil "taken by", subject:pick {Math|English|Science|History|Geography}, score:int 0 100 "score|mark", exam_date:date 2023 2024 "exam date|date"
""",
    "zoo": """
zoo(zoos): name:unique {City Zoo|Safari Park|Wildlife Center|Aqua World|Bird Sanctuary|Jungle Park|Northern Zoo|Desert Park}, city:city, opened_year:year 1860 2015 "opening year|year opened", area_hectares:qty 5 400 "area in hectares|area"
keeper(keepers)*: name:person, zoo_id:fk zoo "working at", years_experience:int 1 35 "years of experience"
animal(animals): name:person "name", species:pick {lion|tiger|elephant|giraffe|zebra|penguin|panda|kangaroo|flamingo|gorilla}, age:int 1 50, weight_kg:real 3 6000 "weight in kilograms|weight", zoo_id:fk zoo "living in", keeper_id:fk keeper "cared for by"
""",
    "games": """
studio(studios): name:company "name|studio name", country:country, founded_year:year 1975 2020 "founding year|year founded", employees:qty 5 5000 "number of employees|staff size"
game(games): title:title "title|name", studio_id:fk studio "developed by", genre:pick {RPG|Shooter|Puzzle|Strategy|Racing|Platformer|Sports}, release_year:year 1990 2024 "release year|year of release", price:money 0 70 "price|cost", copies_sold:qty 1000 20000000 "copies sold|sales"
player(players)*: name:person, country:country, age:int 12 70
rating(ratings): game_id:fk game "of", player_id:fk player "given by", stars:int 1 5 "stars|star rating", rated_date:date 2020 2024 "rating date|date"
~ player "who rated" game; game "rated by" player
""",
    "concerts": """
venue(venues): name:unique {Blue Hall|Red Arena|The Dome|Open Air Park|Riverside Stage|Opera House|Jazz Cellar|Stadium North}, city:city, capacity:qty 200 80000 "capacity|number of seats"
band(bands): name:unique {The Echoes|Night Owls|Paper Kites|Silver Lines|Wild Horses|Neon Rivers|Static Hearts|Copper Moon|Glass Tigers|Velvet Sky}, genre:pick {rock|pop|jazz|metal|indie|folk} "genre|music style", formed_year:year 1965 2020 "year formed|formation year", members_count:int 1 9 "number of members|member count"
concert(concerts): band_id:fk band "by", venue_id:fk venue "at", concert_date:date 2019 2024 "concert date|date", tickets_sold:qty 50 80000 "tickets sold|number of tickets sold", ticket_price:money 10 250 "ticket price|price"
~ band "that played at" venue; venue "that hosted" band
""",
    "pharmacy": """
manufacturer(manufacturers): name:company, country:country
medicine(medicines): name:unique {Paracetol|Ibuprex|Amoxilin|Cetirax|Omeprazin|Lorazem|Metformax|Atorvan|Salbutol|Diclofex|Naproxa|Zyrtal}, manufacturer_id:fk manufacturer "made by", price:money 2 120 "price|cost", form:pick {tablet|capsule|syrup|cream|inhaler} "form|dosage form", ?requires_prescription:pick {yes|no} "prescription requirement"
patient(patients)*: name:person, age:int 1 95, city:city
prescription(prescriptions): patient_id:fk patient "for", medicine_id:fk medicine "of", prescribed_date:date 2022 2024 "prescription date|date prescribed", quantity:qty 1 90 "quantity|number of doses"
~ patient "prescribed|who were prescribed" medicine; medicine "prescribed to" patient
""",
    "cinemas": """
cinema(cinemas): name:unique {Rex|Odeon|Lumiere|Galaxy|Palace|Regal|Metro|Starlight|Majestic|Orpheum}, city:city, screens:int 1 20 "number of screens|screen count", opened_year:year 1920 2022 "opening year|year opened"
film(films): title:title "title|name", genre:pick {drama|comedy|thriller|animation|documentary|sci-fi}, running_time:int 75 200 "running time|length in minutes", release_year:year 1990 2024 "release year"
screening(screenings): cinema_id:fk cinema "at", film_id:fk film "of", screening_date:date 2024 2024 "screening date|date", tickets_sold:qty 0 400 "tickets sold", ticket_price:money 5 20 "ticket price|price"
~ cinema "that showed|that screened" film; film "shown at|screened at" cinema
""",
    "news": """
publisher(publishers): name:company "name|publisher name", country:country, founded_year:year 1850 2015 "founding year|year founded"
journalist(journalists)*: name:person, publisher_id:fk publisher "working for", beat:pick {politics|sports|science|culture|business|technology} "beat|topic", years_active:int 1 45 "years active"
article(articles): title:title "title|headline", journalist_id:fk journalist "written by", published_date:date 2020 2024 "publication date|date published", word_count:qty 200 6000 "word count|length in words", views:qty 10 2000000 "views|number of views"
""",
    "transit": """
line(lines): name:unique {Red Line|Blue Line|Green Line|Yellow Line|Orange Line|Purple Line|Circle Line|Airport Express}, mode:pick {metro|tram|bus|train} "mode|transport mode", opened_year:year 1900 2020 "opening year|year opened"
station(stations): name:unique {Central|Market|Harbor|University|Museum|Stadium|Airport|Park|Bridge|Castle|Hospital|Library|Zoo|Old Town|Riverside|Exhibition}, line_id:fk line "on", zone:int 1 5 "zone|fare zone", daily_passengers:qty 200 90000 "daily passengers|passengers per day", ?accessible:pick {yes|no} "step-free access"
trip(trips): line_id:fk line "on", trip_date:date 2024 2024 "trip date|date", passengers:qty 5 900 "passengers|number of passengers", delay_minutes:int 0 45 "delay in minutes|delay"
""",
    "veterinary": """
owner(owners)*: name:person, city:city, phone_plan:pick {basic|premium} "insurance plan|plan"
pet(pets): name:person "name", species:pick {dog|cat|rabbit|parrot|hamster|turtle} "species|kind of animal", age:int 0 20, weight_kg:real 0 70 "weight in kilograms|weight", owner_id:fk owner "owned by"
vet(vets)*: name:person, clinic:pick {Paws Clinic|Animal Care|Happy Tails|VetPoint} "clinic", years_experience:int 1 40 "years of experience"
visit(visits): pet_id:fk pet "for", vet_id:fk vet "with", visit_date:date 2022 2024 "visit date|date", cost:money 20 900 "cost|fee", reason:pick {checkup|vaccination|injury|surgery|dental} "reason|reason for the visit"
~ pet "seen by|treated by" vet; vet "who treated" pet
""",
    "wine": """
winery(wineries): name:company "name|winery name", region:pick {Bordeaux|Tuscany|Rioja|Napa|Mosel|Douro|Barossa|Mendoza} "region|wine region", founded_year:year 1700 2015 "founding year|year founded"
wine(wines): name:title, winery_id:fk winery "made by", grape:pick {Merlot|Chardonnay|Riesling|Syrah|Tempranillo|Malbec|Pinot Noir|Sauvignon Blanc} "grape variety|grape", vintage:year 1990 2022 "vintage|vintage year", price:money 8 400 "price|cost", score:int 70 100 "score|critic score"
tasting(tastings): wine_id:fk wine "of", taster:person "taster name|taster", tasting_date:date 2021 2024 "tasting date|date", points:int 70 100 "points|tasting points"
""",
    "charity": """
donor(donors)*: name:person, city:city, country:country, first_donation_year:year 1995 2024 "year of first donation"
campaign(campaigns): name:title "name|title", cause:pick {education|health|environment|housing|animals|disaster relief} "cause", goal:money 1000 5000000 "goal|fundraising goal", start_date:date 2018 2024 "start date|launch date"
donation(donations): donor_id:fk donor "made by", campaign_id:fk campaign "to", amount:money 5 50000 "amount|donated amount", donation_date:date 2018 2024 "donation date|date", method:pick {card|bank transfer|cash|check} "payment method|method"
~ donor "who donated to|who gave to" campaign; campaign "supported by|funded by" donor
""",
    "tourism": """
country_guide(country guide/country guides): country:country, language:pick {English|French|Spanish|German|Italian|Japanese} "language|official language", ?visa_required:pick {yes|no} "visa requirement"
tour(tours): name:title "name|title", country_guide_id:fk country_guide "for", duration_days:int 1 21 "duration in days|length in days", price:money 100 9000 "price|cost", max_group_size:int 4 40 "maximum group size|group size limit"
traveler(travelers)*: name:person, age:int 18 85, city:city
tour_booking(tour booking/tour bookings): tour_id:fk tour "for", traveler_id:fk traveler "made by", booking_date:date 2022 2024 "booking date|date booked", people:int 1 6 "number of people|party size"
~ traveler "who booked" tour; tour "booked by" traveler
""",
    # ---- larger schemas: several bridges and chains of three or four tables
    "online_shop": """
category(categories): name:unique {Electronics|Books|Toys|Garden|Kitchen|Sports|Beauty|Music|Pet Supplies|Office} "name|category name"
supplier(suppliers): name:company "name|supplier name", country:country, ?rating:real 1 5 "rating|supplier rating"
product(products): name:unique {Wireless Mouse|Garden Hose|Chess Set|Tennis Racket|Face Cream|Guitar Strings|Dog Bed|Stapler|Board Game|Cookbook|Desk Fan|Frying Pan|Yoga Block|Bluetooth Speaker|Plant Pot|Lipstick|Puzzle Box|Cat Tree|Novel Box Set|Paper Shredder|Running Shoes|Toy Robot|Spice Rack|Phone Charger} "name|product name", category_id:fk category "in", supplier_id:fk supplier "supplied by", price:money 2 900 "price|unit price|cost", stock:qty 0 500 "stock|quantity in stock"
customer(customers)*: name:person, city:city, signup_date:date 2015 2024 "sign-up date|registration date", ?is_premium:pick {yes|no} "premium status"
customer_order(order/orders): customer_id:fk customer "placed by", order_date:date 2022 2024 "order date|date ordered", status:pick {pending|shipped|delivered|cancelled|returned} "status|order status", total_amount:money 5 3000 "total amount|order total"
order_item(order item/order items): customer_order_id:fk customer_order "in", product_id:fk product "of", quantity:qty 1 10 "quantity|number of units"
~ customer_order "containing|that included" product; product "ordered in|included in" customer_order
review(reviews): product_id:fk product "of|about", customer_id:fk customer "written by", stars:int 1 5 "stars|star rating", review_date:date 2020 2024 "review date|date"
~ customer "who reviewed" product; product "reviewed by" customer
shipment(shipments): customer_order_id:fk customer_order "for", carrier:pick {DHL|UPS|FedEx|La Poste|Royal Mail} "carrier|shipping company", shipped_date:date 2022 2024 "shipping date|date shipped", weight_kg:real 0.1 40 "weight in kilograms|weight"
""",
    "human_resources": """
region(regions): name:unique {Europe|Americas|Asia|Middle East|Africa|Oceania} "name|region name"
location(locations): city:city, street_address:unique {1 Main Street|220 King Road|45 Harbor Way|9 Station Square|300 Park Lane|71 Mill Street|18 Bridge Road|5 Tower Place|62 Hill Avenue|14 Dock Street} "street address|address", region_id:fk region "in"
department(departments): name:unique {Accounting|Purchasing|Human Resources|IT|Shipping|Sales|Executive|Public Relations|Treasury|Payroll} "name|department name", location_id:fk location "located at"
job(jobs): title:unique {Accountant|Buyer|Recruiter|Programmer|Stock Clerk|Sales Representative|President|PR Officer|Treasurer|Payroll Clerk|Analyst|Administrator} "job title|title", min_salary:money 20000 60000 "minimum salary", max_salary:money 60000 250000 "maximum salary"
employee(employees)*: first_name:unique {Alice|Amir|Ana|Anton|Aziz|Beatriz|Ben|Camille|Carlos|Chen|Chloe|Daniel|Dario|Elena|Emma|Farah|Felix|Fatima|Gabriel|Grace|Hana|Hugo|Ines|Ivan|Jack|Jana|Javier|Julia|Kai|Kenji|Lara|Leo|Lina|Lucas|Maya} "first name", last_name:pick {Abbott|Almeida|Baker|Bauer|Bianchi|Costa|Dubois|Evans|Fischer|Garcia|Hansen|Ito|Jensen|Kim|Kowalski} "last name|surname", department_id:fk department "working in", job_id:fk job "working as", salary:money 20000 240000 "salary|pay|wage", hire_date:date 1995 2024 "hire date|date of hiring", ?commission_pct:real 0 0.4 "commission rate"
job_history(job history entries): employee_id:fk employee "of", job_id:fk job "as", department_id:fk department "in", start_date:date 1990 2020 "start date", end_date:date 2000 2024 "end date"
~ employee "who once worked in|who previously worked in" department; department "that once employed" employee
""",
    "social_network": """
user_account(user/users)*: name:person "name|full name", city:city, joined_date:date 2012 2024 "join date|date joined", followers:qty 0 90000 "followers|number of followers"
community(communities): name:unique {Hiking Club|Film Buffs|Home Cooks|Chess Lovers|Urban Gardeners|Book Circle|Photo Walks|Retro Gaming|Jazz Fans|Runners United} "name|community name", topic:pick {outdoors|movies|food|games|books|photography|music|sports} "topic|theme", created_year:year 2008 2024 "creation year|year created"
membership(memberships): user_account_id:fk user_account "of", community_id:fk community "in", role:pick {member|moderator|admin} "role", joined_date:date 2015 2024 "join date|date joined"
~ user_account "who joined|belonging to" community; community "joined by" user_account
post(posts): user_account_id:fk user_account "written by|posted by", community_id:fk community "posted in", title:title "title|headline", likes:qty 0 20000 "likes|number of likes", posted_date:date 2020 2024 "posting date|date posted"
~ user_account "who posted in" community; community "with posts by" user_account
comment(comments): post_id:fk post "on", user_account_id:fk user_account "written by", words:int 1 300 "number of words|length in words", comment_date:date 2020 2024 "comment date|date"
~ user_account "who commented on" post; post "commented on by" user_account
""",
    "software": """
language(languages): name:unique {Python|Rust|Go|Java|TypeScript|C++|Kotlin|Ruby|Haskell|Swift} "name|language name", first_release:year 1972 2015 "year of first release|release year", paradigm:pick {functional|object-oriented|multi-paradigm|procedural} "paradigm"
developer(developers)*: name:person, country:country, experience_years:int 0 30 "years of experience|experience in years", ?hourly_rate:money 15 200 "hourly rate"
repository(repositories): name:unique {fastgrid|tinyweb|ledgerkit|mapforge|quillnote|pixelcraft|datasprout|cloudlet|nimbus-cli|orbitdb|sparrow|tesserae} "name|repository name", language_id:fk language "written in", stars:qty 0 90000 "stars|star count", created_year:year 2008 2024 "creation year|year created", license:pick {MIT|Apache-2.0|GPL-3.0|BSD-3-Clause} "license"
contribution(contributions): developer_id:fk developer "by", repository_id:fk repository "to", commits:qty 1 3000 "commits|number of commits", first_commit_date:date 2015 2024 "date of first commit"
~ developer "who contributed to" repository; repository "with contributions from|maintained by" developer
issue(issues): repository_id:fk repository "in|filed against", developer_id:fk developer "reported by", severity:pick {low|medium|high|critical} "severity|priority", opened_date:date 2019 2024 "opening date|date opened", ?is_closed:pick {yes|no} "closed status"
~ developer "who reported issues in" repository; repository "with issues reported by" developer
software_release(release/releases): repository_id:fk repository "of", version:unique {0.1.0|0.2.0|0.9.1|1.0.0|1.1.0|1.2.3|2.0.0|2.1.0|2.4.1|3.0.0|3.2.0|4.0.0|4.1.2|5.0.0|5.3.1} "version|version number", release_date:date 2016 2024 "release date|date released", downloads:qty 10 900000 "downloads|number of downloads"
""",
    "recipes": """
cuisine(cuisines): name:unique {Italian|Mexican|Japanese|Indian|French|Thai|Greek|Lebanese|Korean|Spanish} "name|cuisine name", region:pick {Europe|Asia|Americas|Middle East} "region|continent"
chef(chefs)*: name:person, country:country, years_experience:int 1 40 "years of experience", ?michelin_stars:int 0 3 "Michelin stars"
recipe(recipes): title:title "title|name", cuisine_id:fk cuisine "from", chef_id:fk chef "created by", prep_minutes:int 5 180 "preparation time in minutes|prep time", difficulty:pick {easy|medium|hard} "difficulty|difficulty level", servings:int 1 12 "servings|number of servings"
ingredient(ingredients): name:unique {Flour|Sugar|Butter|Egg|Garlic|Onion|Tomato|Basil|Rice|Chicken|Tofu|Olive Oil|Lemon|Chili|Ginger|Milk|Cheese|Potato} "name|ingredient name", kind:pick {dairy|vegetable|grain|meat|spice|oil|fruit} "kind|food group", calories_per_100g:int 10 900 "calories per 100 grams|calories"
recipe_ingredient(recipe ingredient/recipe ingredients): recipe_id:fk recipe "of", ingredient_id:fk ingredient "using", grams:qty 1 800 "amount in grams|grams"
~ recipe "using|that use" ingredient; ingredient "used in" recipe
recipe_rating(rating/ratings): recipe_id:fk recipe "of", reviewer:person "reviewer name|reviewer", stars:int 1 5 "stars|star rating", rated_date:date 2019 2024 "rating date|date"
""",
    "election": """
party(parties): name:unique {Green Party|Liberal Union|Labour Front|Conservative Alliance|Pirate Party|Centre Movement|Social Democrats|Farmers League} "name|party name", founded_year:year 1850 2015 "founding year|year founded", ideology:pick {left|centre-left|centre|centre-right|right} "ideology|political position"
district(districts): name:unique {North Ward|South Ward|East End|West End|Harbor District|Old Town|Riverside|Hill Park|University Quarter|Market District} "name|district name", population:qty 5000 400000 "population|number of inhabitants", region:pick {Urban|Suburban|Rural} "area type|region type"
candidate(candidates)*: name:person, party_id:fk party "from|representing", district_id:fk district "running in", age:int 25 80, ?is_incumbent:pick {yes|no} "incumbent status"
election(elections): name:unique {General 2012|General 2016|General 2020|General 2024|Local 2014|Local 2018|Local 2022|By-election 2019} "name|election name", election_year:year 2012 2024 "year|election year", turnout:real 35 90 "turnout|voter turnout"
result(results): candidate_id:fk candidate "of", election_id:fk election "in", votes:qty 100 90000 "votes|number of votes", ?is_winner:pick {yes|no} "winner status"
~ candidate "who ran in|who stood in" election; election "contested by" candidate
""",
    "olympics": """
nation(nations): name:country "name|country", continent:pick {Europe|Asia|Africa|Americas|Oceania}
sport(sports): name:unique {Athletics|Swimming|Cycling|Rowing|Judo|Fencing|Gymnastics|Boxing|Archery|Sailing} "name|sport name", ?is_team_sport:pick {yes|no} "team sport"
sports_venue(venue/venues): name:unique {Olympic Stadium|Aquatics Centre|Velodrome|Lake Arena|Expo Hall|Harbor Marina|Palace of Sports|North Park} "name|venue name", capacity:qty 1000 80000 "capacity|number of seats"
event(events): name:unique {100m Sprint|Marathon|200m Freestyle|Road Race|Single Sculls|Lightweight Judo|Team Foil|All-Around|Heavyweight Bout|Recurve Individual|Laser Class|4x100m Relay|Long Jump|Keirin|Eights} "name|event name", sport_id:fk sport "in", sports_venue_id:fk sports_venue "held at", event_date:date 2024 2024 "event date|date"
athlete(athletes)*: name:person, nation_id:fk nation "from|representing", age:int 16 42, height_cm:int 150 210 "height in centimeters|height", gender:pick {F|M} "gender|sex"
medal(medals): athlete_id:fk athlete "won by", event_id:fk event "in", medal_type:pick {gold|silver|bronze} "medal type|color"
~ athlete "who won medals in|who medaled in" event; event "with medals won by" athlete
""",
    "car_rental": """
rental_branch(branch/branches): name:unique {Airport North|Central Station|Harbor Point|Old Town|West Mall|University|Lakeside|East Gate} "name|branch name", city:city, opened_year:year 1990 2023 "opening year|year opened"
vehicle(vehicles): plate:unique {AB-123-CD|BX-901-KL|CD-456-EF|DR-220-MN|EF-789-GH|FT-331-PQ|GH-012-IJ|HK-678-RS|JL-345-TU|KM-543-VW|LN-876-XY|MP-210-ZA|NR-654-BC|PS-987-DE|QT-111-FG|RV-222-HI|SW-333-JK|TX-444-LM} "license plate|plate number", model:pick {Corolla|Golf|Civic|Model 3|Clio|Focus|Octavia|Tucson} "model|car model", rental_branch_id:fk rental_branch "based at", daily_rate:money 20 250 "daily rate|price per day", mileage:qty 1000 200000 "mileage|kilometers driven", ?fuel:pick {petrol|diesel|electric|hybrid} "fuel type"
renter(renters)*: name:person, city:city, age:int 21 80, ?license_year:year 1970 2022 "year licensed"
rental(rentals): vehicle_id:fk vehicle "of", renter_id:fk renter "by", start_date:date 2022 2024 "start date|pickup date", days:int 1 30 "number of days|rental length", total_cost:money 30 6000 "total cost|price"
~ renter "who rented" vehicle; vehicle "rented by" renter
payment(payments): rental_id:fk rental "for", amount:money 30 6000 "amount|amount paid", method:pick {card|cash|bank transfer|voucher} "payment method|method", paid_date:date 2022 2024 "payment date|date paid"
maintenance(maintenance records): vehicle_id:fk vehicle "on", service_type:pick {oil change|tire change|inspection|repair|cleaning} "service type|kind of service", cost:money 20 3000 "cost|price", service_date:date 2021 2024 "service date|date"
branch_staff(staff member/staff members)*: name:person, rental_branch_id:fk rental_branch "working at", position:pick {manager|agent|mechanic|cleaner} "position|role", salary:money 20000 90000 "salary|pay"
""",
    "insurance": """
insurance_agent(agent/agents)*: name:person, office:pick {Downtown|North|South|Airport|Harbor} "office|branch office", years_active:int 1 40 "years active|years of service"
policyholder(policyholders)*: name:person, city:city, age:int 18 90, ?risk_level:pick {low|medium|high} "risk level|risk class"
policy(policies): policy_number:unique {P-1001|P-1002|P-1003|P-1004|P-1005|P-1006|P-1007|P-1008|P-1009|P-1010|P-1011|P-1012|P-1013|P-1014|P-1015|P-1016|P-1017|P-1018|P-1019|P-1020|P-1021|P-1022|P-1023|P-1024} "policy number", policyholder_id:fk policyholder "held by|owned by", insurance_agent_id:fk insurance_agent "sold by", policy_type:pick {auto|home|life|travel|health} "policy type|type of coverage", annual_premium:money 100 9000 "annual premium|premium", start_date:date 2010 2024 "start date"
~ policyholder "insured through|who bought policies from" insurance_agent; insurance_agent "who sold policies to" policyholder
claim(claims): policy_id:fk policy "under|against", claim_date:date 2018 2024 "claim date|date filed", amount:money 100 200000 "amount|claimed amount", status:pick {open|approved|rejected|paid} "status|claim status"
adjuster(adjusters)*: name:person, specialty:pick {auto|property|medical|liability} "specialty|area", years_experience:int 1 35 "years of experience"
claim_review(claim review/claim reviews): claim_id:fk claim "of", adjuster_id:fk adjuster "by", review_date:date 2018 2024 "review date|date", decision:pick {approve|reject|escalate} "decision"
~ adjuster "who reviewed" claim; claim "reviewed by" adjuster
""",
    "railway": """
station(stations): name:unique {Central|North Junction|Harbor|Airport|University|Old Town|Riverside|Hill Top|Lakeside|Market|Castle Gate|Exhibition} "name|station name", city:city, platforms:int 1 16 "number of platforms|platforms", opened_year:year 1840 2020 "opening year|year opened"
train(trains): name:unique {Northern Star|Coastal Express|Alpine Arrow|Silver Bullet|Night Owl|Sunrise|Blue Comet|Red Falcon|Green Line Shuttle|Iron Horse} "name|train name", train_type:pick {high speed|intercity|regional|night} "train type|type", seats:qty 80 900 "number of seats|seat count", built_year:year 1980 2023 "year built|construction year"
route(routes): name:unique {R1|R2|R3|R4|R5|R6|R7|R8|R9|R10|R11|R12} "name|route name", distance_km:qty 20 1200 "distance in kilometers|length"
route_stop(route stop/route stops): route_id:fk route "on", station_id:fk station "at", stop_order:int 1 12 "stop number|position on the route"
~ route "stopping at|that stop at" station; station "served by" route
trip(trips): train_id:fk train "by", route_id:fk route "on", departure_date:date 2024 2024 "departure date|date", delay_minutes:int 0 90 "delay in minutes|delay"
~ train "running on" route; route "served by" train
passenger(passengers)*: name:person, age:int 1 90, ?loyalty_tier:pick {none|silver|gold|platinum} "loyalty tier|status"
ticket(tickets): trip_id:fk trip "for", passenger_id:fk passenger "bought by|held by", price:money 5 400 "price|fare", travel_class:pick {first|second} "travel class|class"
~ passenger "traveling on|with tickets for" trip; trip "taken by" passenger
""",
    "space": """
agency(agencies): name:unique {NASA|ESA|JAXA|ISRO|CNSA|CSA|UKSA|ASI} "name|agency name", country:country, founded_year:year 1958 2015 "founding year|year founded", annual_budget:money 100000000 25000000000 "annual budget|budget"
spacecraft(spacecraft/spacecraft): name:unique {Aurora|Pioneer X|Skylark|Odyssey|Helios|Kestrel|Vega|Artemis II|Nomad|Zenith|Polaris|Minerva} "name|spacecraft name", agency_id:fk agency "built by|operated by", mass_kg:qty 500 40000 "mass in kilograms|mass", ?reusable:pick {yes|no} "reusability"
mission(missions): name:unique {Lunar Gateway|Mars Relay|Deep Sky 1|Solar Probe|Comet Chaser|Ice Moon|Orbit Lab|Venus Mapper|Asteroid Miner|Titan Dive|Sun Watch|Ring Survey} "name|mission name", spacecraft_id:fk spacecraft "flown on|using", launch_year:year 1990 2024 "launch year|year launched", destination:pick {Moon|Mars|Venus|Jupiter|Saturn|Earth orbit|Sun} "destination|target", cost:money 50000000 5000000000 "cost|mission cost", outcome:pick {success|partial success|failure} "outcome|result"
astronaut(astronauts)*: name:person, agency_id:fk agency "from|working for", birth_year:year 1950 2000 "birth year|year of birth", flight_hours:qty 0 9000 "flight hours|hours in space"
crew_assignment(crew assignment/crew assignments): astronaut_id:fk astronaut "of", mission_id:fk mission "on", role:pick {commander|pilot|engineer|scientist} "role|crew role"
~ astronaut "who flew on|assigned to" mission; mission "crewed by" astronaut
""",
    "podcasts": """
podcast_host(host/hosts)*: name:person, country:country, ?debut_year:year 2005 2023 "debut year"
podcast(podcasts): title:title "title|name", podcast_host_id:fk podcast_host "hosted by", category:pick {comedy|true crime|news|science|history|business|sports} "category|genre", launched_year:year 2005 2024 "launch year|year launched", subscribers:qty 100 3000000 "subscribers|number of subscribers"
episode(episodes): title:title "title|name", podcast_id:fk podcast "of|from", duration_minutes:int 10 180 "duration in minutes|length", listens:qty 50 900000 "listens|number of plays", aired_date:date 2018 2024 "air date|release date"
guest(guests)*: name:person, occupation:pick {author|scientist|actor|politician|athlete|chef|musician} "occupation|profession"
appearance(appearances): episode_id:fk episode "on|in", guest_id:fk guest "by|of"
~ guest "who appeared on|featured in" episode; episode "featuring" guest
sponsor(sponsors): name:company "name|sponsor name", industry:pick {tech|food|finance|travel|fashion} "industry|sector"
sponsorship(sponsorships): podcast_id:fk podcast "of|for", sponsor_id:fk sponsor "by|from", amount:money 500 200000 "amount|sponsorship amount", year:year 2018 2024 "year"
~ sponsor "sponsoring|that sponsored" podcast; podcast "sponsored by" sponsor
""",
    "orchestra": """
conductor(conductors)*: name:person, nationality:country "nationality|country", birth_year:year 1930 1995 "birth year|year of birth"
orchestra(orchestras): name:unique {City Philharmonic|Royal Symphony|Chamber Players|National Youth Orchestra|Baroque Ensemble|Radio Symphony|Festival Orchestra|Opera Orchestra} "name|orchestra name", conductor_id:fk conductor "led by|conducted by", founded_year:year 1840 2015 "founding year|year founded", city:city
musician(musicians)*: name:person, orchestra_id:fk orchestra "playing in|member of", instrument:pick {violin|viola|cello|flute|oboe|trumpet|horn|timpani|harp|clarinet} "instrument", years_member:int 1 40 "years of membership|years in the orchestra"
composer(composers)*: name:unique {Bach|Mozart|Beethoven|Brahms|Mahler|Debussy|Ravel|Sibelius|Dvorak|Schubert|Verdi|Stravinsky} "name|composer name", country:country "country|nationality", birth_year:year 1685 1900 "birth year|year of birth"
piece(pieces): title:title "title|name", composer_id:fk composer "by|composed by", duration_minutes:int 5 90 "duration in minutes|length", form:pick {symphony|concerto|sonata|overture|suite|requiem} "form|type"
performance(performances): orchestra_id:fk orchestra "by|given by", performance_date:date 2020 2024 "performance date|date", attendance:qty 100 3000 "attendance|audience size", ticket_price:money 10 200 "ticket price|price"
program_item(program item/program items): performance_id:fk performance "in", piece_id:fk piece "of"
~ performance "featuring|that included" piece; piece "played in|performed in" performance
""",
    "clinical_trials": """
trial_sponsor(sponsor/sponsors): name:company "name|sponsor name", country:country, sponsor_type:pick {pharma|university|government|foundation} "sponsor type|type"
trial(trials): title:unique {HEART-1|NEURO-2|ONCO-3|DIAB-4|LUNG-5|SKIN-6|BONE-7|SLEEP-8|IMMUNE-9|EYE-10|LIVER-11|GUT-12} "title|trial name", trial_sponsor_id:fk trial_sponsor "funded by|sponsored by", phase:pick {I|II|III|IV} "phase|trial phase", start_year:year 2010 2024 "start year|year started", target_enrollment:qty 20 5000 "target enrollment|planned number of participants"
site(sites): name:unique {St. Mary Hospital|University Clinic|Harbor Medical|City Health Center|Lakeside Hospital|North Research Unit|Children's Hospital|Mercy Clinic} "name|site name", city:city, beds:qty 20 1500 "number of beds|beds"
trial_site(trial site/trial sites): trial_id:fk trial "of", site_id:fk site "at", activation_date:date 2010 2024 "activation date"
~ trial "run at|conducted at" site; site "running|hosting" trial
participant(participants)*: name:person, site_id:fk site "enrolled at", trial_id:fk trial "in", age:int 18 90, sex:pick {F|M} "sex|gender", ?outcome:pick {improved|stable|worsened|withdrew} "outcome|result"
""",
    "mountaineering": """
mountain_range(range/ranges): name:unique {Alps|Andes|Himalaya|Rockies|Caucasus|Pyrenees|Karakoram|Atlas} "name|range name", continent:pick {Europe|Asia|South America|North America|Africa}
mountain(mountains): name:unique {Mont Blanc|Aconcagua|Everest|Denali|Elbrus|Aneto|K2|Toubkal|Matterhorn|Lhotse|Chimborazo|Mount Elbert|Annapurna|Eiger} "name|mountain name", mountain_range_id:fk mountain_range "in", height_m:int 2500 8850 "height in meters|height|elevation", prominence_m:int 300 8850 "prominence in meters|prominence", ?first_ascent_year:year 1786 1990 "year of first ascent"
climber(climbers)*: name:person, nationality:country "nationality|country", birth_year:year 1940 2004 "birth year|year of birth", ?sponsored:pick {yes|no} "sponsorship"
expedition(expeditions): mountain_id:fk mountain "to|on", leader_id:fk climber "led by", expedition_year:year 1990 2024 "year|expedition year", members:int 2 20 "number of members|team size", summited:pick {yes|no} "summit success"
expedition_member(expedition member/expedition members): expedition_id:fk expedition "of", climber_id:fk climber "joined by"
~ climber "who joined|who took part in" expedition; expedition "joined by" climber
""",
    "film_festival": """
festival(festivals): name:unique {Lumen Film Festival|Harbor Shorts|Northern Lights Fest|Sunset Cinema Days|Indie Vision|Golden Reel|Mountain Film Week|River Docs} "name|festival name", city:city, founded_year:year 1950 2018 "founding year|year founded"
filmmaker(filmmakers)*: name:person, nationality:country "nationality|country", birth_year:year 1945 2000 "birth year|year of birth"
festival_film(film/films): title:title "title|name", filmmaker_id:fk filmmaker "directed by|made by", genre:pick {drama|documentary|comedy|animation|horror|experimental} "genre", runtime:int 5 190 "runtime|running time in minutes", budget:money 5000 90000000 "budget|production budget"
jury_member(jury member/jury members)*: name:person, festival_id:fk festival "serving at|on the jury of", profession:pick {critic|actor|director|producer|writer} "profession|occupation"
selection(selections): festival_film_id:fk festival_film "of", festival_id:fk festival "at", selection_year:year 2015 2024 "year|selection year", section:pick {competition|out of competition|short films|retrospective} "section|program section", ?award:pick {none|grand prize|jury prize|audience award|best director} "award|prize"
~ festival_film "selected at|screened at" festival; festival "that selected|that screened" festival_film
""",
    "e_learning": """
instructor(instructors)*: name:person, country:country, rating:real 1 5 "rating|instructor rating", joined_year:year 2010 2024 "year joined|join year"
online_course(course/courses): title:unique {Intro to Python|Data Visualization|Machine Learning Basics|Web Design|Public Speaking|Digital Marketing|Photography 101|Spanish for Beginners|Personal Finance|Project Management|SQL Essentials|Creative Writing|Music Theory|Drawing Fundamentals} "title|course name", instructor_id:fk instructor "taught by|created by", category:pick {programming|design|business|languages|arts} "category|subject area", price:money 0 300 "price|cost", hours:int 1 60 "length in hours|number of hours"
lesson(lessons): title:title "title|name", online_course_id:fk online_course "in|part of", minutes:int 3 90 "length in minutes|duration"
learner(learners)*: name:person, city:city, age:int 13 80, ?subscription_plan:pick {free|monthly|annual} "subscription plan|plan"
course_enrollment(enrollment/enrollments): learner_id:fk learner "of", online_course_id:fk online_course "in", enrolled_date:date 2019 2024 "enrollment date|date enrolled", progress_pct:int 0 100 "progress|percent completed"
~ learner "enrolled in|taking" online_course; online_course "taken by" learner
quiz_attempt(quiz attempt/quiz attempts): learner_id:fk learner "by", lesson_id:fk lesson "on", score:int 0 100 "score|quiz score", attempt_date:date 2019 2024 "attempt date|date"
~ learner "who took quizzes on" lesson; lesson "attempted by" learner
""",
    "city_hospital": """
department(departments): name:unique {Cardiology|Neurology|Oncology|Pediatrics|Radiology|Surgery|Emergency|Psychiatry} "name|department name", floor:int 1 12 "floor|floor number", budget:money 200000 9000000
physician(physicians)*: name:person, department_id:fk department "in|working in", position:pick {resident|attending|chief|consultant} "position|rank", salary:money 90000 450000 "salary|pay", hire_year:year 1990 2024 "hire year|year hired"
nurse(nurses)*: name:person, department_id:fk department "in|working in", shift:pick {day|night|rotating} "shift", years_experience:int 1 40 "years of experience"
patient(patients)*: name:person, age:int 0 99, city:city, ?insurance:pick {public|private|none} "insurance|insurance type"
room(rooms): room_number:unique {101|102|103|104|201|202|203|204|301|302|303|304|401|402|403|404} "room number", room_type:pick {single|double|suite|intensive care} "room type|type", department_id:fk department "in|belonging to"
stay(stays): patient_id:fk patient "of", room_id:fk room "in", admitted_date:date 2022 2024 "admission date|date admitted", nights:int 1 40 "number of nights|length of stay"
~ patient "who stayed in" room; room "used by" patient
appointment(appointments): patient_id:fk patient "for", physician_id:fk physician "with", appointment_date:date 2022 2024 "appointment date|date", fee:money 40 900 "fee|charge"
~ patient "treated by|who saw" physician; physician "who treated|who saw" patient
medication(medications): name:unique {Aspirin|Heparin|Insulin|Morphine|Amoxicillin|Metoprolol|Warfarin|Prednisone|Albuterol|Lisinopril|Ondansetron|Furosemide} "name|medication name", brand:pick {Medix|Caremark|Healix|Novacure|Pharmalux} "brand|manufacturer", unit_cost:money 1 300 "unit cost|price"
prescription(prescriptions): patient_id:fk patient "for", physician_id:fk physician "written by|prescribed by", medication_id:fk medication "of", dose_mg:int 5 1000 "dose in milligrams|dose", prescribed_date:date 2022 2024 "prescription date|date"
~ patient "prescribed|who were prescribed" medication; medication "prescribed to" patient; physician "who prescribed" medication; medication "prescribed by" physician
medical_procedure(procedure/procedures): name:unique {Appendectomy|MRI Scan|Bypass Surgery|Colonoscopy|Biopsy|Dialysis|Knee Replacement|Cataract Surgery|Endoscopy|Angioplasty} "name|procedure name", cost:money 200 90000 "cost|price"
treatment(treatments): patient_id:fk patient "of", medical_procedure_id:fk medical_procedure "with|undergoing", physician_id:fk physician "performed by", treatment_date:date 2021 2024 "treatment date|date"
~ patient "who underwent" medical_procedure; medical_procedure "performed on" patient; physician "who performed" medical_procedure; medical_procedure "performed by" physician
""",
    "airline_operations": """
carrier(carriers): name:unique {Sky Blue|Northwind Air|Coastal Airways|Polar Jet|Sunline|Atlas Air|Eagle Express|Horizon Wings} "name|airline name", country:country, alliance:pick {Star|Oneworld|SkyTeam|none} "alliance"
airport(airports): code:unique {LYS|CDG|TXL|MAD|LIS|FCO|VIE|PRG|WAW|OSL|DUB|BOS|ORD|DEN|SEA} "code|airport code", city:city, runways:int 1 6 "number of runways"
aircraft_type(aircraft type/aircraft types): model:unique {A320|A330|A350|B737|B747|B777|B787|E190|ATR 72|CRJ900} "model|model name", manufacturer:pick {Airbus|Boeing|Embraer|ATR|Bombardier} "manufacturer|maker", seats:int 50 450 "number of seats|seat count", range_km:qty 1500 15000 "range in kilometers|range"
aircraft(aircraft/aircraft): registration:unique {F-GKXA|D-AIPB|EC-MXV|CS-TNP|I-EIXM|OE-LBR|OK-NEP|SP-LWA|LN-RKF|EI-DVM|N123UA|N456AA|N789DL|C-GKWS|G-EUPT|JA8089} "registration|tail number", aircraft_type_id:fk aircraft_type "of type", carrier_id:fk carrier "owned by|operated by", built_year:year 1995 2023 "year built|build year"
route(routes): origin_airport_id:fk airport "from|departing from", distance_km:qty 150 12000 "distance in kilometers|distance", ?is_international:pick {yes|no} "international status"
flight(flights): flight_number:unique {SB101|SB202|NW330|NW418|CA500|CA612|PJ707|PJ815|SL920|SL101|AA230|AA345|EE456|EE567|HW678|HW789|SB890|NW901|CA112|PJ223} "flight number", route_id:fk route "on|flying", aircraft_id:fk aircraft "flown with|using", departure_date:date 2024 2024 "departure date|date", delay_minutes:int 0 240 "delay in minutes|delay"
~ aircraft "flying on|used on" route; route "flown by" aircraft
traveler(passenger/passengers)*: name:person, nationality:country "nationality|country", birth_year:year 1940 2015 "birth year|year of birth"
booking(bookings): traveler_id:fk traveler "made by|for", flight_id:fk flight "on|for", seat_class:pick {economy|premium economy|business|first} "seat class|class", price:money 40 9000 "price|fare"
~ traveler "who booked|flying on" flight; flight "booked by" traveler
crew_member(crew member/crew members)*: name:person, carrier_id:fk carrier "working for|employed by", crew_role:pick {captain|first officer|purser|flight attendant} "role|crew role", hire_year:year 1990 2024 "hire year|year hired"
crew_assignment(crew assignment/crew assignments): crew_member_id:fk crew_member "of", flight_id:fk flight "on"
~ crew_member "working on|assigned to" flight; flight "staffed by" crew_member
loyalty_account(loyalty account/loyalty accounts): traveler_id:fk traveler "of|held by", carrier_id:fk carrier "with", tier:pick {blue|silver|gold|platinum} "tier|status", miles:qty 0 900000 "miles|miles balance"
~ traveler "with loyalty accounts at|who are members of" carrier; carrier "whose loyalty members include" traveler
""",
}

FIRST_NAMES = """Alice Amir Ana Anton Aziz Beatriz Ben Camille Carlos Chen Chloe Daniel Dario Elena Emma Farah Felix Fatima
Gabriel Grace Hana Hugo Ines Ivan Jack Jana Javier Julia Kai Kenji Lara Leo Lina Lucas Maya Marco Mei Mila Nadia Noah
Nora Omar Olga Pablo Priya Rafael Rosa Sami Sara Sofia Tariq Tom Uma Victor Wei Yara Yusuf Zoe""".split()
LAST_NAMES = """Abbott Almeida Baker Bauer Bianchi Chen Costa Dubois Evans Fischer Garcia Hansen Ito Jensen Kim Kowalski
Larsen Lopez Martin Meyer Moreau Nakamura Novak Okafor Olsen Patel Petrov Quinn Rossi Santos Schmidt Silva Tanaka
Walker Weber Wilson Yilmaz Young Zhang""".split()
CITIES = """Lyon Paris Berlin Madrid Lisbon Rome Vienna Prague Warsaw Oslo Dublin Boston Chicago Denver Seattle Austin
Toronto Montreal Sydney Melbourne Osaka Tokyo Seoul Mumbai Cairo Nairobi Lagos Lima Bogota Santiago""".split()
COUNTRIES = """France Germany Spain Portugal Italy Austria Poland Norway Ireland Canada Australia Japan Brazil India
Mexico Kenya Nigeria Peru Chile Egypt Sweden Greece""".split()
TITLE_ADJECTIVES = """Silent Crimson Hidden Golden Broken Endless Quiet Wild Lost Burning Frozen Distant Midnight Electric
Velvet Hollow Bright Secret Northern Paper""".split()
TITLE_NOUNS = """River Garden Harbor Mountain Letter Kingdom Journey Shadow Orchard Lantern Voyage Dream Forest Mirror
Storm Island Bridge Winter Echo Signal""".split()
COMPANY_SUFFIXES = "Group Partners Industries Labs Systems Holdings Trading Works Studios Brothers".split()

# ---- the words of a schema and of questions ------------------------------------------------------------------
# How some databases shorten a word in a multi-word name (`dept_name`, `EmpID`, `hire_dt`); questions keep the
# whole words, so a model has to link "department name" to `dept_nm`. No abbreviation may be a SQL function
# name (min, max, avg, exp...), or a column would read as a call.
ABBREVIATIONS = {
    "account": "acct", "address": "addr", "amount": "amt", "appointment": "appt", "assignment": "asgmt",
    "balance": "bal", "capacity": "cap", "category": "cat", "count": "cnt", "customer": "cust", "date": "dt",
    "department": "dept", "description": "descr", "distance": "dist", "duration": "dur", "employee": "emp",
    "hectares": "ha", "hours": "hrs", "information": "info", "kilograms": "kg", "language": "lang",
    "location": "loc", "manager": "mgr", "manufacturer": "mfr", "minutes": "mins", "name": "nm", "number": "num",
    "passengers": "pax", "percent": "pct", "performance": "perf", "population": "pop",
    "product": "prod", "professor": "prof", "project": "proj", "quantity": "qty", "registration": "reg",
    "salary": "sal", "seconds": "secs", "student": "stu", "temperature": "temp", "total": "tot",
    "university": "univ", "vehicle": "veh", "weight": "wt", "year": "yr", "years": "yrs",
}

# Synonyms any domain's columns may be asked by, besides their own labels (by label).
LABEL_SYNONYMS = {
    "city": ["town"], "country": ["nation"], "budget": ["funding"], "price": ["cost"], "salary": ["pay"],
    "status": ["state"], "title": ["name"],
}

# Adjectives for "the oldest student" instead of "the student with the highest age": label -> (high, low).
SUPERLATIVES = {
    "age": ("oldest", "youngest"), "price": ("most expensive", "cheapest"), "cost": ("most expensive", "cheapest"),
    "fee": ("most expensive", "cheapest"), "ticket price": ("most expensive", "cheapest"),
    "salary": ("best-paid", "lowest-paid"), "height in meters": ("highest", "lowest"),
    "height in centimeters": ("tallest", "shortest"), "weight in kilograms": ("heaviest", "lightest"),
    "distance": ("longest", "shortest"), "running time": ("longest", "shortest"),
    "duration in minutes": ("longest", "shortest"), "number of pages": ("longest", "shortest"),
    "capacity": ("largest", "smallest"), "population": ("most populous", "least populous"),
    "floor area": ("largest", "smallest"), "area in hectares": ("largest", "smallest"),
}

# Words that may not name a table or a column unquoted: SQL keywords, and words sqlglot reads as keywords.
RESERVED = set("""
abort action add after all alter analyze and as asc attach autoincrement before begin between by cascade case cast
check class collate column commit conflict constraint create cross current current_date current_time
current_timestamp database default deferrable deferred delete desc detach distinct do drop each else end escape
except exclude exclusive exists explain fail filter first following for foreign from full generated glob group
groups having if ignore immediate in index indexed initially inner insert instead intersect interval into is
isnull join key last left like limit match materialized natural no not nothing notnull null nulls of offset on
or order others outer over partition plan pragma preceding primary query raise range recursive references regexp
reindex release rename replace restrict returning right rollback row rows savepoint select set table temp
temporary then ties to transaction trigger unbounded union unique update user using vacuum values view virtual
when where window with without
""".split())
