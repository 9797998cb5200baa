"""The domains of the embedded generator: tables, columns and the English words for them.

One domain per block. A table line reads `table(plural)[*]: column:kind [args] ["label"], ...`; `*` marks tables
of people (so that a question says "customers from Lyon", not "customers in Lyon"); every table also gets an
`<table>_id INTEGER PRIMARY KEY`. A leading `?` marks a column that some databases of the domain leave out.
`x_id:fk other "phrase"` is a foreign key, and its phrase links the two in a question ("books written by
authors from Peru"). Kinds: person, title, company, city, country, pick {a|b} (a category), unique {a|b}
(a name, distinct per row), int, qty (an additive count), money, real, rating, year, date (with ranges).
"""

DOMAINS = {
    "library": """
author(authors)*: name:person, nationality:country, birth_year:year 1920 1995 "birth year"
book(books): title:title, genre:pick {Fantasy|Mystery|Romance|Science Fiction|History|Poetry|Biography}, pages:qty 80 900 "number of pages", price:money 5 60, ?year_published:year 1950 2024 "year published", author_id:fk author "written by"
member(members)*: name:person, city:city, ?joined_year:year 2010 2024 "year joined"
loan(loans): book_id:fk book "of", member_id:fk member "made by", loan_date:date 2021 2024 "loan date", days:int 1 60 "number of days"
""",
    "retail": """
customer(customers)*: name:person, city:city, ?email_opt_in:pick {yes|no} "newsletter opt-in", loyalty_points:int 0 5000 "loyalty points"
store(stores): name:unique {Central|Riverside|Northgate|Harbor View|Old Town|Westfield|Hillcrest|Lakeside|Market Square|Parkway}, city:city, opened_year:year 1990 2023 "opening year", ?floor_area:qty 200 5000 "floor area"
product(products): name:unique {Desk Lamp|Office Chair|Water Bottle|Backpack|Notebook|Headphones|Coffee Mug|Umbrella|Keyboard|Sunglasses|Wall Clock|Yoga Mat|Blender|Toaster|Phone Case|Scarf|Rain Jacket|Candle}, category:pick {Home|Office|Electronics|Outdoor|Kitchen|Clothing}, price:money 3 250, stock:qty 0 400
purchase(purchases): customer_id:fk customer "made by", product_id:fk product "of", store_id:fk store "at", quantity:qty 1 10, purchase_date:date 2022 2024 "purchase date"
""",
    "university": """
department(departments): name:unique {Mathematics|Physics|Chemistry|Biology|History|Economics|Computer Science|Philosophy|Linguistics|Geography}, building:pick {North Hall|South Hall|Science Center|Main Building|Library Annex}, budget:money 100000 2000000
professor(professors)*: name:person, department_id:fk department "in", rank:pick {Assistant|Associate|Full}, salary:money 50000 180000, hire_year:year 1985 2023 "hire year"
student(students)*: name:person, age:int 17 35, city:city, ?gpa:real 2 4 "GPA"
course(courses): title:unique {Linear Algebra|Quantum Mechanics|Organic Chemistry|Genetics|Modern Europe|Microeconomics|Databases|Ethics|Syntax|Climate Systems|Statistics|Algorithms|Cell Biology|Game Theory}, credits:int 1 6, department_id:fk department "offered by", professor_id:fk professor "taught by"
enrollment(enrollments): student_id:fk student "of", course_id:fk course "in", grade:pick {A|B|C|D|F}, semester:pick {Fall 2022|Spring 2023|Fall 2023|Spring 2024}
""",
    "hospital": """
doctor(doctors)*: name:person, specialty:pick {Cardiology|Neurology|Pediatrics|Oncology|Dermatology|Orthopedics}, years_experience:int 1 40 "years of experience"
patient(patients)*: name:person, age:int 1 95, city:city, ?blood_type:pick {A+|A-|B+|O+|O-|AB+} "blood type"
appointment(appointments): patient_id:fk patient "for", doctor_id:fk doctor "with", appointment_date:date 2022 2024 "appointment date", fee:money 40 400, status:pick {completed|cancelled|scheduled}
""",
    "airline": """
airline(airlines): name:unique {Sky Blue|Northwind Air|Coastal Airways|Polar Jet|Sunline|Atlas Air|Eagle Express|Horizon Wings}, country:country, founded_year:year 1950 2015 "founding year", fleet_size:qty 5 300 "fleet size"
airport(airports): name:unique {Greenfield International|Bay Regional|Mountain View Airport|Capital Airport|Harbor Field|Lakeside Airport|Redstone Airport|Summit Airport|Valley Airport|Pine Ridge Airport}, city:city, runways:int 1 6 "number of runways"
flight(flights): flight_number:unique {AB101|AB202|CX330|CX418|DL500|DL612|EK707|EK815|FR920|FR101|GA230|GA345|HX456|HX567|IB678|IB789|JL890|JL901|KL112|KL223} "flight number", airline_id:fk airline "operated by", origin_airport_id:fk airport "departing from", distance:qty 150 9000, price:money 49 1500, duration_minutes:int 40 800 "duration in minutes"
""",
    "music": """
artist(artists)*: name:person, country:country, debut_year:year 1960 2020 "debut year", ?genre:pick {Rock|Pop|Jazz|Hip Hop|Classical|Electronic|Folk}
album(albums): title:title, artist_id:fk artist "by", release_year:year 1965 2024 "release year", sales:qty 1000 5000000, ?label:pick {Blue Note|Sunrise Records|Echo|Northern Sound|Indigo}
song(songs): title:title, album_id:fk album "from", duration_seconds:int 90 600 "duration in seconds", streams:qty 1000 90000000
""",
    "cinema": """
director(directors)*: name:person, nationality:country, birth_year:year 1940 1990 "birth year"
movie(movies): title:title, genre:pick {Drama|Comedy|Thriller|Horror|Animation|Documentary|Action}, release_year:year 1970 2024 "release year", budget:money 100000 200000000, rating:real 1 10, director_id:fk director "directed by"
review(reviews): movie_id:fk movie "of", critic_name:person "critic name", score:int 1 10, review_date:date 2015 2024 "review date"
""",
    "football": """
team(teams): name:unique {Red Lions|Blue Sharks|Green Foxes|Golden Eagles|Iron Wolves|Silver Hawks|Black Bears|White Tigers|Storm United|River City FC}, city:city, founded_year:year 1880 2010 "founding year", ?stadium_capacity:qty 5000 90000 "stadium capacity"
player(players)*: name:person, team_id:fk team "playing for", position:pick {Goalkeeper|Defender|Midfielder|Forward}, age:int 17 39, goals:qty 0 40, nationality:country
game(games): home_team_id:fk team "hosted by", game_date:date 2022 2024 "game date", attendance:qty 1000 80000, home_goals:int 0 6 "home goals", away_goals:int 0 6 "away goals"
""",
    "restaurant": """
restaurant(restaurants): name:unique {The Olive Tree|Blue Lantern|Spice Route|Harbor Grill|Golden Noodle|Little Paris|Casa Verde|Smoke House|Green Bowl|Sakura Garden}, city:city, cuisine:pick {Italian|Thai|Mexican|French|Japanese|Indian|American}, rating:real 2 5, opened_year:year 1995 2023 "opening year"
chef(chefs)*: name:person, restaurant_id:fk restaurant "working at", years_experience:int 1 35 "years of experience", salary:money 30000 120000
dish(dishes): name:unique {Margherita Pizza|Pad Thai|Tacos al Pastor|Coq au Vin|Ramen|Butter Chicken|Cheeseburger|Caesar Salad|Risotto|Sushi Platter|Falafel Wrap|Lasagna|Green Curry|Onion Soup|Paella}, restaurant_id:fk restaurant "served at", price:money 6 45, calories:int 200 1400, ?is_vegetarian:pick {yes|no} "vegetarian"
""",
    "hotel": """
hotel(hotels): name:unique {Grand Plaza|Seaside Inn|Mountain Lodge|City Suites|Royal Garden|Sunset Resort|Maple House|Riverside Hotel|Palm Court|Alpine Rest}, city:city, stars:int 1 5, rooms:qty 10 600 "number of rooms"
guest(guests)*: name:person, country:country, age:int 18 85
booking(bookings): hotel_id:fk hotel "at", guest_id:fk guest "made by", check_in:date 2022 2024 "check-in date", nights:int 1 21 "number of nights", total_price:money 60 6000 "total price"
""",
    "company": """
department(departments): name:unique {Sales|Marketing|Engineering|Finance|Legal|Support|Research|Operations|Design}, floor:int 1 20, budget:money 50000 5000000
employee(employees)*: name:person, department_id:fk department "working in", title:pick {Analyst|Engineer|Manager|Designer|Specialist|Director|Intern} "job title", salary:money 25000 220000, hire_date:date 2005 2024 "hire date", city:city
project(projects): name:unique {Apollo|Beacon|Cascade|Delta|Ember|Falcon|Granite|Harbor|Iris|Jupiter|Keystone|Lumen}, budget:money 10000 3000000, start_year:year 2015 2024 "start year", status:pick {active|finished|paused}
assignment(assignments): employee_id:fk employee "of", project_id:fk project "on", hours:qty 5 800 "hours worked"
""",
    "real_estate": """
agent(agents)*: name:person, agency:pick {Keller & Co|Bright Homes|Urban Nest|Coastline Realty|Prime Estates} "agency", years_active:int 1 30 "years active"
property(properties): address:unique {12 Oak Street|4 Elm Avenue|88 Pine Road|7 Birch Lane|150 Cedar Drive|23 Maple Court|9 Willow Way|61 Ash Grove|30 Spruce Place|17 Poplar Row|5 Chestnut Hill|42 Linden Park|71 Hazel Close|2 Rowan Square|19 Alder Street} "address", city:city, type:pick {apartment|house|studio|townhouse|villa} "property type", bedrooms:int 0 6 "number of bedrooms", area:qty 25 450 "floor area", agent_id:fk agent "listed by"
sale(sales): property_id:fk property "of", sale_date:date 2018 2024 "sale date", price:money 80000 2500000
""",
    "cars": """
manufacturer(manufacturers): name:unique {Aurora Motors|Baltic Auto|Condor|Drako|Eon Cars|Falke|Garnet|Helix Motors}, country:country, founded_year:year 1900 2010 "founding year"
car_model(car models): name:unique {Sprint|Voyager|Nova|Ranger|Atlas|Breeze|Comet|Summit|Tundra|Zephyr|Orbit|Pulse|Vector|Quartz}, manufacturer_id:fk manufacturer "made by", body_type:pick {sedan|SUV|hatchback|coupe|van|pickup} "body type", horsepower:int 70 600, price:money 12000 140000, ?fuel:pick {petrol|diesel|electric|hybrid} "fuel type"
dealer(dealers): name:company, city:city
sale(sales): car_model_id:fk car_model "of", dealer_id:fk dealer "made by", sale_year:year 2018 2024 "sale year", units:qty 1 40 "units sold"
""",
    "museum": """
museum(museums): name:unique {City Art Museum|National Gallery|Modern Arts Center|Harbor Museum|History House|Design Museum|Photography Hall|Sculpture Park}, city:city, founded_year:year 1850 2015 "founding year", annual_visitors:qty 5000 3000000 "annual visitors"
painter(painters)*: name:person, nationality:country, birth_year:year 1500 1990 "birth year"
artwork(artworks): title:title, painter_id:fk painter "painted by", museum_id:fk museum "held by", year_created:year 1520 2023 "year created", value:money 1000 90000000 "estimated value", medium:pick {oil|watercolor|acrylic|ink|tempera}
""",
    "farming": """
farm(farms): name:unique {Green Acres|Sunny Fields|Willow Farm|Oak Hollow|Meadow Brook|Red Barn|Clover Hill|Stone Creek|Golden Valley|Pine Farm}, region:pick {North|South|East|West|Central}, area_hectares:qty 10 3000 "area in hectares", founded_year:year 1850 2020 "founding year"
crop(crops): name:unique {Wheat|Corn|Barley|Soybean|Potato|Rice|Oats|Sunflower|Canola|Sugar Beet}, category:pick {grain|vegetable|oilseed}, price_per_ton:money 100 900 "price per ton"
harvest(harvests): farm_id:fk farm "from", crop_id:fk crop "of", harvest_year:year 2015 2024 "harvest year", tons:qty 5 5000 "tonnage"
""",
    "conference": """
conference(conferences): name:unique {DataConf|AI Summit|WebDev Days|CloudCon|SecureWorld|QuantumMeet|RoboForum|BioCompute}, city:city, year:year 2010 2024, attendees:qty 100 20000 "number of attendees"
researcher(researchers)*: name:person, affiliation:pick {MIT|ETH Zurich|University of Tokyo|Oxford|Stanford|TU Munich|Sorbonne|McGill} "affiliation", h_index:int 1 90 "h-index"
paper(papers): title:title, conference_id:fk conference "presented at", researcher_id:fk researcher "written by", citations:qty 0 5000, pages:int 4 30
""",
    "gym": """
trainer(trainers)*: name:person, specialty:pick {yoga|boxing|cycling|pilates|weightlifting|running}, hourly_rate:money 20 120 "hourly rate"
member(members)*: name:person, age:int 16 80, city:city, membership_type:pick {basic|premium|student|family} "membership type", join_date:date 2015 2024 "join date"
session(sessions): trainer_id:fk trainer "led by", member_id:fk member "attended by", session_date:date 2023 2024 "session date", duration_minutes:int 30 120 "duration in minutes"
""",
    "logistics": """
warehouse(warehouses): name:unique {Depot A|Depot B|North Hub|South Hub|East Yard|West Yard|Central Store|Port Terminal}, city:city, capacity:qty 1000 90000
driver(drivers)*: name:person, license_class:pick {B|C|CE|D} "license class", years_experience:int 1 40 "years of experience", city:city
shipment(shipments): warehouse_id:fk warehouse "sent from", driver_id:fk driver "delivered by", weight_kg:qty 1 20000 "weight in kilograms", ship_date:date 2023 2024 "shipping date", status:pick {delivered|in transit|delayed|returned}
""",
    "bank": """
branch(branches): name:unique {Downtown|Airport|University|Harborfront|Old Market|Riverside|Uptown|Station Square}, city:city, opened_year:year 1960 2022 "opening year"
client(clients)*: name:person, city:city, age:int 18 90, credit_score:int 300 850 "credit score"
account(accounts): client_id:fk client "owned by", branch_id:fk branch "held at", account_type:pick {checking|savings|business} "account type", balance:money 0 250000, opened_date:date 2000 2024 "opening date"
""",
    "school": """
teacher(teachers)*: name:person, subject:pick {Math|English|Science|Art|Music|History|Geography|Sports}, age:int 24 65, salary:money 28000 90000
pupil(pupils)*: name:person, grade_level:int 1 12 "grade level", city:city, teacher_id:fk teacher "taught by"
exam(exams): pupil_id:fk pupil "taken by", subject:pick {Math|English|Science|History|Geography}, score:int 0 100, exam_date:date 2023 2024 "exam date"
""",
    "zoo": """
zoo(zoos): name:unique {City Zoo|Safari Park|Wildlife Center|Aqua World|Bird Sanctuary|Jungle Park|Northern Zoo|Desert Park}, city:city, opened_year:year 1860 2015 "opening year", area_hectares:qty 5 400 "area in hectares"
keeper(keepers)*: name:person, zoo_id:fk zoo "working at", years_experience:int 1 35 "years of experience"
animal(animals): name:person "name", species:pick {lion|tiger|elephant|giraffe|zebra|penguin|panda|kangaroo|flamingo|gorilla}, age:int 1 50, weight_kg:real 3 6000 "weight in kilograms", zoo_id:fk zoo "living in", keeper_id:fk keeper "cared for by"
""",
    "games": """
studio(studios): name:company, country:country, founded_year:year 1975 2020 "founding year", employees:qty 5 5000 "number of employees"
game(games): title:title, studio_id:fk studio "developed by", genre:pick {RPG|Shooter|Puzzle|Strategy|Racing|Platformer|Sports}, release_year:year 1990 2024 "release year", price:money 0 70, copies_sold:qty 1000 20000000 "copies sold"
player(players)*: name:person, country:country, age:int 12 70
rating(ratings): game_id:fk game "of", player_id:fk player "given by", stars:int 1 5, rated_date:date 2020 2024 "rating date"
""",
    "concerts": """
venue(venues): name:unique {Blue Hall|Red Arena|The Dome|Open Air Park|Riverside Stage|Opera House|Jazz Cellar|Stadium North}, city:city, capacity:qty 200 80000
band(bands): name:unique {The Echoes|Night Owls|Paper Kites|Silver Lines|Wild Horses|Neon Rivers|Static Hearts|Copper Moon|Glass Tigers|Velvet Sky}, genre:pick {rock|pop|jazz|metal|indie|folk}, formed_year:year 1965 2020 "year formed", members_count:int 1 9 "number of members"
concert(concerts): band_id:fk band "by", venue_id:fk venue "at", concert_date:date 2019 2024 "concert date", tickets_sold:qty 50 80000 "tickets sold", ticket_price:money 10 250 "ticket price"
""",
    "pharmacy": """
manufacturer(manufacturers): name:company, country:country
medicine(medicines): name:unique {Paracetol|Ibuprex|Amoxilin|Cetirax|Omeprazin|Lorazem|Metformax|Atorvan|Salbutol|Diclofex|Naproxa|Zyrtal}, manufacturer_id:fk manufacturer "made by", price:money 2 120, form:pick {tablet|capsule|syrup|cream|inhaler}, ?requires_prescription:pick {yes|no} "prescription requirement"
patient(patients)*: name:person, age:int 1 95, city:city
prescription(prescriptions): patient_id:fk patient "for", medicine_id:fk medicine "of", prescribed_date:date 2022 2024 "prescription date", quantity:qty 1 90
""",
    "cinemas": """
cinema(cinemas): name:unique {Rex|Odeon|Lumiere|Galaxy|Palace|Regal|Metro|Starlight|Majestic|Orpheum}, city:city, screens:int 1 20 "number of screens", opened_year:year 1920 2022 "opening year"
film(films): title:title, genre:pick {drama|comedy|thriller|animation|documentary|sci-fi}, running_time:int 75 200 "running time", release_year:year 1990 2024 "release year"
screening(screenings): cinema_id:fk cinema "at", film_id:fk film "of", screening_date:date 2024 2024 "screening date", tickets_sold:qty 0 400 "tickets sold", ticket_price:money 5 20 "ticket price"
""",
    "news": """
publisher(publishers): name:company, country:country, founded_year:year 1850 2015 "founding year"
journalist(journalists)*: name:person, publisher_id:fk publisher "working for", beat:pick {politics|sports|science|culture|business|technology}, years_active:int 1 45 "years active"
article(articles): title:title, journalist_id:fk journalist "written by", published_date:date 2020 2024 "publication date", word_count:qty 200 6000 "word count", views:qty 10 2000000
""",
    "transit": """
line(lines): name:unique {Red Line|Blue Line|Green Line|Yellow Line|Orange Line|Purple Line|Circle Line|Airport Express}, mode:pick {metro|tram|bus|train}, opened_year:year 1900 2020 "opening year"
station(stations): name:unique {Central|Market|Harbor|University|Museum|Stadium|Airport|Park|Bridge|Castle|Hospital|Library|Zoo|Old Town|Riverside|Exhibition}, line_id:fk line "on", zone:int 1 5, daily_passengers:qty 200 90000 "daily passengers", ?accessible:pick {yes|no} "step-free access"
trip(trips): line_id:fk line "on", trip_date:date 2024 2024 "trip date", passengers:qty 5 900, delay_minutes:int 0 45 "delay in minutes"
""",
    "veterinary": """
owner(owners)*: name:person, city:city, phone_plan:pick {basic|premium} "insurance plan"
pet(pets): name:person "name", species:pick {dog|cat|rabbit|parrot|hamster|turtle}, age:int 0 20, weight_kg:real 0 70 "weight in kilograms", owner_id:fk owner "owned by"
vet(vets)*: name:person, clinic:pick {Paws Clinic|Animal Care|Happy Tails|VetPoint} "clinic", years_experience:int 1 40 "years of experience"
visit(visits): pet_id:fk pet "for", vet_id:fk vet "with", visit_date:date 2022 2024 "visit date", cost:money 20 900, reason:pick {checkup|vaccination|injury|surgery|dental}
""",
    "wine": """
winery(wineries): name:company, region:pick {Bordeaux|Tuscany|Rioja|Napa|Mosel|Douro|Barossa|Mendoza}, founded_year:year 1700 2015 "founding year"
wine(wines): name:title, winery_id:fk winery "made by", grape:pick {Merlot|Chardonnay|Riesling|Syrah|Tempranillo|Malbec|Pinot Noir|Sauvignon Blanc} "grape variety", vintage:year 1990 2022, price:money 8 400, score:int 70 100
tasting(tastings): wine_id:fk wine "of", taster:person "taster name", tasting_date:date 2021 2024 "tasting date", points:int 70 100
""",
    "charity": """
donor(donors)*: name:person, city:city, country:country, first_donation_year:year 1995 2024 "year of first donation"
campaign(campaigns): name:title, cause:pick {education|health|environment|housing|animals|disaster relief}, goal:money 1000 5000000, start_date:date 2018 2024 "start date"
donation(donations): donor_id:fk donor "made by", campaign_id:fk campaign "to", amount:money 5 50000, donation_date:date 2018 2024 "donation date", method:pick {card|bank transfer|cash|check} "payment method"
""",
    "tourism": """
country_guide(country guides): country:country, language:pick {English|French|Spanish|German|Italian|Japanese}, ?visa_required:pick {yes|no} "visa requirement"
tour(tours): name:title, country_guide_id:fk country_guide "for", duration_days:int 1 21 "duration in days", price:money 100 9000, max_group_size:int 4 40 "maximum group size"
traveler(travelers)*: name:person, age:int 18 85, city:city
tour_booking(tour bookings): tour_id:fk tour "for", traveler_id:fk traveler "made by", booking_date:date 2022 2024 "booking date", people:int 1 6 "number of people"
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
